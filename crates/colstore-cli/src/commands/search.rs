//! `col search`: hybrid (the default), keyword or vector search of one collection, with its documents' current text.

use colstore_app::{SearchMode, SearchOptions, SearchResults, Side};
use serde_json::json;

use super::{Ctx, collection_name, io, where_filter};
use crate::cli::{SearchArgs, SearchModeArg};
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
    let mode = match a.mode {
        SearchModeArg::Hybrid => SearchMode::Hybrid,
        SearchModeArg::Keyword => SearchMode::Keyword,
        SearchModeArg::Vector => SearchMode::Vector,
    };
    let store = ctx.open().await?;
    let ports = Ctx::sync_ports(&store).await?;
    let opts = SearchOptions { mode, k: usize::from(a.k), filter: (!filter.is_everything()).then_some(filter) };
    let found = colstore_app::search(&ports, &collection, &a.query, &opts).await?;
    let hits = &found.hits;
    ctx.out
        .json_value(&json!({
            "collection": collection,
            "query": a.query,
            "mode": found.mode,
            "fusion": found.fusion,
            "vector_missing": found.vector_missing,
            "results": to_value(hits),
        }))
        .map_err(io)?;
    if hits.is_empty() {
        let why = match found.mode {
            SearchMode::Keyword => "no chunk has a word of the query",
            SearchMode::Vector => "no synced chunk shares anything with the query",
            SearchMode::Hybrid => "no chunk has a word of the query, and no synced chunk is near it",
        };
        ctx.out.line(format!("No results: {why}.")).map_err(io)?;
    } else {
        ctx.out.line(legend(&found)).map_err(io)?;
    }
    for (i, h) in hits.iter().enumerate() {
        let stale = if h.stale { "  [changed since synced]" } else { "" };
        let sides = if found.mode == SearchMode::Hybrid {
            let by: Vec<String> = h
                .found_by
                .iter()
                .map(|f| format!("{} #{}", if f.side == Side::Keyword { "keyword" } else { "vector" }, f.rank))
                .collect();
            format!("  [{}]", by.join(", "))
        } else {
            String::new()
        };
        ctx.out.data(format!("{:>2}. {:.3}  {}#{}{sides}{stale}\n    {}", i + 1, h.score, h.key, h.chunk, h.snippet)).map_err(io)?;
    }
    let stale = hits.iter().filter(|h| h.stale).count();
    if stale > 0 {
        ctx.out
            .line(format!(
                "note: {stale} hit(s) come from documents changed since they were synced; run `col sync {collection}` to update the index"
            ))
            .map_err(io)?;
    }
    if let Some(missing) = &found.vector_missing {
        ctx.out.line(format!("note: keyword hits only: {missing}")).map_err(io)?;
    }
    if found.not_synced > 0 {
        ctx.out.line(format!("note: {} documents are not synced yet; run `col sync {collection}`", found.not_synced)).map_err(io)?;
    }
    if found.not_indexed > 0 {
        ctx.out
            .line(format!(
                "note: the text of {} changed documents is not searchable: the store is read-only, so the full-text index cannot catch up",
                found.not_indexed
            ))
            .map_err(io)?;
    }
    Ok(())
}

/// What the score column means.
fn legend(found: &SearchResults) -> String {
    match found.mode {
        SearchMode::Hybrid => {
            let f = found.fusion.unwrap_or_else(|| colstore_domain::FusionSettings::default_for(found.embedder_kind.as_deref()));
            format!(
                "Score: reciprocal rank fusion of keyword and vector ranks (weights {} and {}, rrf_k {}); higher is better.",
                f.keyword_weight(),
                f.vector_weight(),
                f.rrf_k()
            )
        }
        SearchMode::Keyword => "Score: BM25 relevance of the chunk's words to the query; higher is better.".to_owned(),
        SearchMode::Vector => {
            let lexical = if found.embedder_kind.as_deref() == Some("hash") {
                "\nThe built-in hash embedder compares words, so even good matches score low: compare scores with each other."
            } else {
                ""
            };
            format!("{}{lexical}", score_legend(found.distance.unwrap_or(colstore_domain::Distance::Cosine)))
        }
    }
}

/// What the score column of a vector search means for a collection's distance.
fn score_legend(distance: colstore_domain::Distance) -> &'static str {
    match distance {
        colstore_domain::Distance::Cosine => "Score: cosine similarity of the chunk to the query, from 0 (nothing in common) to 1 (the same).",
        colstore_domain::Distance::Dot => "Score: dot product of the chunk's and the query's vectors; higher is closer.",
        colstore_domain::Distance::Euclid => "Score: minus the Euclidean distance between the chunk and the query; closer to 0 is closer.",
    }
}
